-- Shared helpers, prepended to every queue script by the Rust side.
-- Every key of a queue starts with its base `{prefix:queue}` (one hash slot).
local HIST_TTL = 604800000 -- history kept 7 days after its last event
local function key(b, s) return b .. ':' .. s end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function num(x) return string.format('%d', x) end
-- Waiting-set member: zero-padded send sequence then the id, so equal scores
-- (same ready time) sort by send order.
local function member(seq, id) return string.format('%016d', tonumber(seq)) .. '|' .. id end
local function hist(b, id, event, attempt, detail, now)
  local e = num(now) .. '|' .. event .. '|' .. num(attempt) .. '|'
  if detail then e = e .. '+' .. detail else e = e .. '-' end
  local hk = key(b, 'h:' .. id)
  redis.call('RPUSH', hk, e)
  redis.call('PEXPIRE', hk, HIST_TTL)
  redis.call('SADD', key(b, 'hids'), id)
end
local LIVE = {'msg', 'pri', 'seq', 'att', 'err', 'ff', 'tok'}
local function forget(b, id)
  for _, f in ipairs(LIVE) do redis.call('HDEL', key(b, f), id) end
  redis.call('ZREM', key(b, 'leased'), id)
end
local function to_dead(b, id, reason, err, now)
  local dseq = redis.call('INCR', key(b, 'dseq'))
  local dk = key(b, 'dl:' .. dseq)
  local lerr = err
  if not lerr then lerr = redis.call('HGET', key(b, 'err'), id) end
  local ff = redis.call('HGET', key(b, 'ff'), id) or num(now)
  redis.call('HSET', dk, 'id', id,
    'env', redis.call('HGET', key(b, 'msg'), id) or '',
    'pri', redis.call('HGET', key(b, 'pri'), id) or '0',
    'att', redis.call('HGET', key(b, 'att'), id) or '0',
    'reason', reason, 'ff', ff, 'dead_at', num(now))
  if lerr then redis.call('HSET', dk, 'err', lerr) end
  redis.call('ZADD', key(b, 'dead'), dseq, dseq)
  forget(b, id)
end
local function wait_again(b, id, at)
  local p = redis.call('HGET', key(b, 'pri'), id) or '0'
  local seq = redis.call('HGET', key(b, 'seq'), id) or '0'
  redis.call('ZADD', key(b, 'w:' .. p), num(at), member(seq, id))
end
