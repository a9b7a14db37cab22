-- List bridge, recovery: the parked items taken longer than grace_ms ago (by the server
-- clock), oldest first: their bridge died (or stalled) between taking them and
-- confirming them, so they are sent again.
-- KEYS: moving, moving_at (one hash slot). ARGV: grace_ms, max.
-- Returns {seq1, taken_at_ms1, payload1, ...}. A stamp without a payload (not written
-- by the bridge) is dropped.
local grace, max = tonumber(ARGV[1]), tonumber(ARGV[2])
local tm = redis.call('TIME')
local now = tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000)
local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', string.format('%d', now - grace),
  'WITHSCORES', 'LIMIT', 0, max)
local res = {}
for i = 1, #old, 2 do
  local seq = old[i]
  local v = redis.call('HGET', KEYS[1], seq)
  if v then
    res[#res + 1] = seq
    res[#res + 1] = tonumber(old[i + 1])
    res[#res + 1] = v
  else
    redis.call('ZREM', KEYS[2], seq)
  end
end
return res
