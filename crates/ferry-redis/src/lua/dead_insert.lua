-- Stores dead letters as given (`DeadLetters::insert_dead_letters`).
-- ARGV: 9 values per letter: id, envelope, priority, attempts, reason, has_error,
-- error, first_failed_at_ms, dead_at_ms -> {1, n}, or {-1} if the queue is missing.
-- Every check is made before the first write, so the batch is all or nothing (one
-- script). Each letter gets a fresh death sequence and the same indexes as `to_dead`.
local b = KEYS[1]
if redis.call('EXISTS', key(b, 'opts')) == 0 then return {-1} end
if #ARGV % 9 ~= 0 then return redis.error_reply('ferry: dead-letter insert takes 9 values per letter') end
local now = now_ms()
local n = 0
for i = 1, #ARGV, 9 do
  local id, reason = ARGV[i], ARGV[i + 4]
  local dseq = redis.call('INCR', key(b, 'dseq'))
  local dk = key(b, 'dl:' .. dseq)
  redis.call('HSET', dk, 'id', id, 'env', ARGV[i + 1], 'pri', ARGV[i + 2], 'att', ARGV[i + 3],
    'reason', reason, 'ff', ARGV[i + 7], 'dead_at', ARGV[i + 8])
  if ARGV[i + 5] == '1' then redis.call('HSET', dk, 'err', ARGV[i + 6]) end
  redis.call('ZADD', key(b, 'dead'), dseq, dseq)
  redis.call('ZADD', key(b, 'dr:' .. reason), dseq, dseq)
  redis.call('SADD', key(b, 'dreasons'), reason)
  redis.call('ZADD', key(b, 'did:' .. id), dseq, dseq)
  hist(id, 'dead_lettered', tonumber(ARGV[i + 3]), reason, now, true)
  n = n + 1
end
hist_flush(b, now)
return {1, n}
