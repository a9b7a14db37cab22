-- Reclaim expired leases, then lease up to ARGV[1] ready messages, highest priority
-- first, FIFO by ready time then send order within a priority.
-- ARGV: max, lease_ms (-1 = queue default), token nonce.
-- Returns {-1} if the queue is missing, else {1, next_due_ms|-1, then per delivery:
-- id, envelope, attempt, token, lease_until_ms}.
local b = KEYS[1]
local max = tonumber(ARGV[1])
local lease = tonumber(ARGV[2])
local nonce = ARGV[3]
local opts = redis.call('HMGET', key(b, 'opts'), 'max_attempts', 'lease_ms')
if not opts[1] then return {-1} end
local max_att = tonumber(opts[1])
if lease < 0 then lease = tonumber(opts[2]) end
local now = now_ms()
local lk = key(b, 'leased')
local expired = redis.call('ZRANGEBYSCORE', lk, '-inf', num(now), 'WITHSCORES', 'LIMIT', 0, 1000)
for i = 1, #expired, 2 do
  local id = expired[i]
  local due = tonumber(expired[i + 1])
  local att = tonumber(redis.call('HGET', key(b, 'att'), id) or '0')
  if att >= max_att then
    hist(b, id, 'dead_lettered', att, 'lease_expired', now)
    to_dead(b, id, 'lease_expired', nil, now)
  else
    redis.call('ZREM', lk, id)
    redis.call('HDEL', key(b, 'tok'), id)
    redis.call('HSETNX', key(b, 'ff'), id, num(now))
    wait_again(b, id, due)
    hist(b, id, 'lease_expired', att, nil, now)
  end
end
local out = {1, -1}
local left = max
local prios = redis.call('ZREVRANGE', key(b, 'prios'), 0, -1)
for _, p in ipairs(prios) do
  if left <= 0 then break end
  local wk = key(b, 'w:' .. p)
  local ms = redis.call('ZRANGEBYSCORE', wk, '-inf', num(now), 'LIMIT', 0, left)
  for _, m in ipairs(ms) do
    redis.call('ZREM', wk, m)
    local id = string.sub(m, 18)
    local att = redis.call('HINCRBY', key(b, 'att'), id, 1)
    local tok = nonce .. '.' .. redis.call('INCR', key(b, 'tseq'))
    local until_ = now + lease
    redis.call('HSET', key(b, 'tok'), id, tok)
    redis.call('ZADD', lk, num(until_), id)
    hist(b, id, 'delivered', att, nil, now)
    out[#out + 1] = id
    out[#out + 1] = redis.call('HGET', key(b, 'msg'), id) or ''
    out[#out + 1] = att
    out[#out + 1] = tok
    out[#out + 1] = until_
    left = left - 1
  end
end
if #out == 2 then
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
return out
