-- Pauses (ARGV[1] = 1) or resumes (0) deliveries from the queue: the `paused` field of
-- its options hash, which the receive script checks. Checked and written in one script
-- so it never creates the options hash (and with it the queue) of a missing queue.
-- Returns {1}, or {-1} if the queue is missing.
local b = KEYS[1]
local ok = key(b, 'opts')
if redis.call('EXISTS', ok) == 0 then return {-1} end
if ARGV[1] == '1' then
  redis.call('HSET', ok, 'paused', '1')
else
  redis.call('HDEL', ok, 'paused')
end
return {1}
