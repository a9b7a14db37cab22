-- Two-phase send store (ferry_core::tx::TxStore). KEYS[1] = base `{P:tx:G}`; derived:
--   base:r:<id>  hash  body (prepared-message bytes), st (prepared|committed), ck (checks),
--                      tok (fencing token), pat (prepared at, ms), err (last error)
--   base:due     zset  id -> ms when a checker may claim it
--   base:order   zset  id -> prepare sequence (listing order)
--   base:seq     counter of prepare sequence numbers and tokens
-- Times are the server's clock (TIME). ARGV[1] = op; replies are arrays, {-1} exists,
-- {-2} fenced (token mismatch), {-3} not found.
local base = KEYS[1]
local op = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due, order, seq = base .. ':due', base .. ':order', base .. ':seq'
local function rec(id) return base .. ':r:' .. id end
local function ms(n) return string.format('%d', n) end
local function fields(id)
  local r = redis.call('HMGET', rec(id), 'body', 'st', 'ck', 'pat', 'err')
  local d = redis.call('ZSCORE', due, id)
  return {id, r[1], r[2], r[3], r[4], d or ms(now), r[5] or ''}
end

if op == 'prepare' then
  local id, body, hold = ARGV[2], ARGV[3], tonumber(ARGV[4])
  if redis.call('EXISTS', rec(id)) == 1 then return {-1} end
  local tok = redis.call('INCR', seq)
  redis.call('HSET', rec(id), 'body', body, 'st', 'prepared', 'ck', 0, 'tok', tok, 'pat', ms(now), 'err', '')
  redis.call('ZADD', due, now + hold, id)
  redis.call('ZADD', order, tok, id)
  return {0, tok}
elseif op == 'hold' then
  local id, tok, hold = ARGV[2], ARGV[3], tonumber(ARGV[4])
  local held = redis.call('HGET', rec(id), 'tok')
  if not held then return {-3} end
  if held ~= tok then return {-2} end
  redis.call('ZADD', due, now + hold, id)
  return {0}
elseif op == 'mark' then
  -- Committed, publish failed: (re)store the record as committed with a fresh token,
  -- even if a checker removed it meanwhile.
  local id, body, after, err = ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
  local tok = redis.call('INCR', seq)
  if redis.call('EXISTS', rec(id)) == 0 then
    redis.call('HSET', rec(id), 'body', body, 'ck', 0, 'pat', ms(now))
    redis.call('ZADD', order, tok, id)
  end
  redis.call('HSET', rec(id), 'st', 'committed', 'err', err, 'tok', tok)
  redis.call('ZADD', due, now + after, id)
  return {1}
elseif op == 'rmclaimed' then
  local id, tok = ARGV[2], ARGV[3]
  local held = redis.call('HGET', rec(id), 'tok')
  if not held then return {-3} end
  if held ~= tok then return {-2} end
  redis.call('DEL', rec(id))
  redis.call('ZREM', due, id)
  redis.call('ZREM', order, id)
  return {0}
elseif op == 'remove' then
  local id = ARGV[2]
  local n = redis.call('DEL', rec(id))
  redis.call('ZREM', due, id)
  redis.call('ZREM', order, id)
  return {n}
elseif op == 'claim' then
  local max, lease = tonumber(ARGV[2]), tonumber(ARGV[3])
  local ids = redis.call('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, max)
  local out = {}
  for _, id in ipairs(ids) do
    local tok = redis.call('INCR', seq)
    redis.call('HSET', rec(id), 'tok', tok)
    redis.call('ZADD', due, now + lease, id)
    local f = fields(id)
    table.insert(f, tok)
    table.insert(out, f)
  end
  return out
elseif op == 'resched' then
  local id, tok, st, ck, after, err = ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6]), ARGV[7]
  local held = redis.call('HGET', rec(id), 'tok')
  if not held then return {-3} end
  if held ~= tok then return {-2} end
  redis.call('HSET', rec(id), 'st', st, 'ck', ck, 'err', err)
  redis.call('ZADD', due, now + after, id)
  return {0}
elseif op == 'get' then
  local id = ARGV[2]
  if redis.call('EXISTS', rec(id)) == 0 then return {} end
  return {fields(id)}
elseif op == 'list' then
  local offset, limit = tonumber(ARGV[2]), tonumber(ARGV[3])
  if limit <= 0 then return {} end
  local out = {}
  for _, id in ipairs(redis.call('ZRANGE', order, offset, offset + limit - 1)) do
    table.insert(out, fields(id))
  end
  return out
elseif op == 'count' then
  return {redis.call('ZCARD', order)}
end
return redis.error_reply('ferry: unknown tx op ' .. op)
