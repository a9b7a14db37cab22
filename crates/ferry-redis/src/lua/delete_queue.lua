-- Deletes one queue's keys, in steps so a queue with millions of dead letters never
-- holds Redis in one script: ARGV[1] = most dead letters to drop in this call.
-- {2} more to do (call again), {1} done (the queue is gone), {-1} no such queue.
-- `opts` goes last, so until then the queue still exists and the next call continues.
local b = KEYS[1]
if redis.call('EXISTS', key(b, 'opts')) == 0 then return {-1} end
local limit = tonumber(ARGV[1])
local batch = redis.call('ZRANGE', key(b, 'dead'), 0, limit - 1)
for _, s in ipairs(batch) do
  local dk = key(b, 'dl:' .. s)
  local id = redis.call('HGET', dk, 'id')
  if id then redis.call('UNLINK', key(b, 'did:' .. id)) end
  redis.call('UNLINK', dk)
  redis.call('ZREM', key(b, 'dead'), s)
end
if #batch == limit then return {2} end
for _, p in ipairs(redis.call('ZRANGE', key(b, 'prios'), 0, -1)) do redis.call('UNLINK', key(b, 'w:' .. p)) end
for _, r in ipairs(redis.call('SMEMBERS', key(b, 'dreasons'))) do redis.call('UNLINK', key(b, 'dr:' .. r)) end
-- UNLINK frees big hashes (messages, history) in the background.
for _, f in ipairs({'msg', 'st', 'err', 'leased', 'dead', 'dapp', 'dreasons', 'prios', 'hist', 'hexp', 'seqctr', 'dseq', 'tseq', 'opts'}) do
  redis.call('UNLINK', key(b, f))
end
return {1}
