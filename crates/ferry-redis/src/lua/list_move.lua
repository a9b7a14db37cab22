-- List bridge, step 1: take up to N items from the plain list, oldest first (producers
-- LPUSH, so the oldest is at the right end), and park each in the moving area under a
-- fresh sequence number, stamped with the server time, all in one atomic step.
-- KEYS: list, seq, moving, moving_at (one hash slot). ARGV: n.
-- Returns {now_ms, seq1, payload1, seq2, payload2, ...}, or {-1, type} when the key
-- holds something other than a list (nothing is touched then).
local n = tonumber(ARGV[1])
local t = redis.call('TYPE', KEYS[1])
if type(t) == 'table' then t = t['ok'] end
if t ~= 'list' and t ~= 'none' then return {-1, t} end
local tm = redis.call('TIME')
local now = tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000)
local stamp = string.format('%d', now)
local res = {now}
for _ = 1, n do
  local v = redis.call('RPOP', KEYS[1])
  if not v then break end
  local seq = redis.call('INCR', KEYS[2])
  redis.call('HSET', KEYS[3], seq, v)
  redis.call('ZADD', KEYS[4], stamp, seq)
  res[#res + 1] = seq
  res[#res + 1] = v
end
return res
