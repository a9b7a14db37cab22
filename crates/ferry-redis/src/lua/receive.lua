-- Reclaim expired leases, then lease up to ARGV[1] ready messages, highest priority
-- first, FIFO by ready time then send order within a priority.
-- ARGV: max, lease_ms (-1 = queue default), token nonce.
-- Returns {-1} if the queue is missing, else {1, next_due_ms|-1, then per delivery:
-- id, envelope, attempt, token, lease_until_ms}. A paused queue (`paused` = 1 in its
-- options, checked here so no delivery slips past a pause) returns {1, -1} and changes
-- nothing.
local b = KEYS[1]
local max = tonumber(ARGV[1])
local lease = tonumber(ARGV[2])
local nonce = ARGV[3]
local opts = redis.call('HMGET', key(b, 'opts'), 'max_attempts', 'lease_ms', 'paused')
if not opts[1] then return {-1} end
if opts[3] == '1' then return {1, -1} end
local max_att = tonumber(opts[1])
if lease < 0 then lease = tonumber(opts[2]) end
local now = now_ms()
local lk, sk = key(b, 'leased'), key(b, 'st')
local expired = redis.call('ZRANGEBYSCORE', lk, '-inf', num(now), 'WITHSCORES', 'LIMIT', 0, 1000)
for i = 1, #expired, 2 do
  local id = expired[i]
  local due = tonumber(expired[i + 1])
  local s = st_get(redis.call('HGET', sk, id))
  local att = (s and s.att) or 0
  if not s or att >= max_att then
    hist_end(id, s, ev('dead_lettered', att, 'lease_expired', now))
    to_dead(b, id, 'lease_expired', nil, now, s)
  else
    redis.call('ZREM', lk, id)
    s.tok = ''
    if s.ff == '' then s.ff = num(now) end
    s.pend = s.pend .. ev('lease_expired', att, nil, now)
    pend_trim(id, s)
    redis.call('HSET', sk, id, st_put(s))
    wait_again(b, id, due, s)
  end
end
local out = {1, -1}
local left = max
local ids, pris, seqs = {}, {}, {}
local prios = redis.call('ZREVRANGE', key(b, 'prios'), 0, -1)
for _, p in ipairs(prios) do
  if left <= 0 then break end
  local wk = key(b, 'w:' .. p)
  local ms = redis.call('ZRANGEBYSCORE', wk, '-inf', num(now), 'LIMIT', 0, left)
  if #ms > 0 then
    -- From -inf, the first n by score are exactly ranks 0..n-1.
    redis.call('ZREMRANGEBYRANK', wk, 0, #ms - 1)
    for _, m in ipairs(ms) do
      ids[#ids + 1] = string.sub(m, 18)
      pris[#pris + 1] = p
      seqs[#seqs + 1] = string.sub(m, 1, 16)
    end
    left = left - #ms
  end
end
if #ids > 0 then
  local states = hmget(sk, ids)
  local envs = hmget(key(b, 'msg'), ids)
  local t0 = redis.call('INCRBY', key(b, 'tseq'), #ids) - #ids
  local until_ = now + lease
  local kv, lz = {}, {}
  for i, id in ipairs(ids) do
    local s = st_get(states[i])
    local att, ff, pend = 1, '', sent_of(envs[i])
    if s then att = s.att + 1; ff = s.ff; pend = s.pend end
    local tok = nonce .. '.' .. num(t0 + i)
    kv[#kv + 1] = id
    kv[#kv + 1] = num(att) .. '|' .. pris[i] .. '|' .. seqs[i] .. '|' .. ff .. '|' .. tok .. '|'
      .. pend .. ev('delivered', att, nil, now)
    lz[#lz + 1] = num(until_)
    lz[#lz + 1] = id
    out[#out + 1] = id
    out[#out + 1] = envs[i] or ''
    out[#out + 1] = att
    out[#out + 1] = tok
    out[#out + 1] = until_
  end
  bulk('HSET', sk, kv)
  bulk('ZADD', lk, lz)
else
  -- Nothing leased: tell the caller when the next message or lease is due.
  local next_due = nil
  for _, p in ipairs(prios) do
    local first = redis.call('ZRANGE', key(b, 'w:' .. p), 0, 0, 'WITHSCORES')
    if first[2] and (not next_due or tonumber(first[2]) < next_due) then next_due = tonumber(first[2]) end
  end
  local l = redis.call('ZRANGE', lk, 0, 0, 'WITHSCORES')
  if l[2] and (not next_due or tonumber(l[2]) < next_due) then next_due = tonumber(l[2]) end
  if next_due then out[2] = next_due end
end
hist_flush(b, now)
return out
