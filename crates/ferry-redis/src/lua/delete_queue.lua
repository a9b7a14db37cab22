-- Deletes every key of one queue. {1} or {-1} if it does not exist.
local b = KEYS[1]
if redis.call('EXISTS', key(b, 'opts')) == 0 then return {-1} end
for _, p in ipairs(redis.call('ZRANGE', key(b, 'prios'), 0, -1)) do redis.call('DEL', key(b, 'w:' .. p)) end
for _, s in ipairs(redis.call('ZRANGE', key(b, 'dead'), 0, -1)) do
  local dk = key(b, 'dl:' .. s)
  local id = redis.call('HGET', dk, 'id')
  if id then redis.call('DEL', key(b, 'did:' .. id)) end
  redis.call('DEL', dk)
end
for _, r in ipairs(redis.call('SMEMBERS', key(b, 'dreasons'))) do redis.call('DEL', key(b, 'dr:' .. r)) end
for _, f in ipairs({'opts', 'msg', 'st', 'err', 'leased', 'dead', 'dreasons', 'prios', 'hist', 'hexp', 'seqctr', 'dseq', 'tseq'}) do
  redis.call('DEL', key(b, f))
end
return {1}
