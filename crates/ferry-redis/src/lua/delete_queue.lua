-- Deletes every key of one queue. {1} or {-1} if it does not exist.
local b = KEYS[1]
if redis.call('EXISTS', key(b, 'opts')) == 0 then return {-1} end
for _, p in ipairs(redis.call('ZRANGE', key(b, 'prios'), 0, -1)) do redis.call('DEL', key(b, 'w:' .. p)) end
for _, id in ipairs(redis.call('SMEMBERS', key(b, 'hids'))) do redis.call('DEL', key(b, 'h:' .. id)) end
for _, s in ipairs(redis.call('ZRANGE', key(b, 'dead'), 0, -1)) do redis.call('DEL', key(b, 'dl:' .. s)) end
for _, f in ipairs({'opts', 'msg', 'pri', 'seq', 'att', 'err', 'ff', 'tok', 'leased', 'dead', 'prios', 'hids', 'seqctr', 'dseq', 'tseq'}) do
  redis.call('DEL', key(b, f))
end
return {1}
