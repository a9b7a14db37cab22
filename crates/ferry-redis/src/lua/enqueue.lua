-- Enqueue a batch into one or more queues (KEYS = queue bases), all or nothing:
-- every check happens before the first write.
-- ARGV: has_route ('0'|'1'), route, then per message: id, envelope, priority, delay_ms (-1 = queue default).
-- Returns {1, per queue: enqueued (-1 = queue missing, skipped), ndups, dup ids...}.
local has_route = ARGV[1] == '1'
local detail = nil
if has_route then detail = 'route key ' .. ARGV[2] end
local now = now_ms()
local res = {1}
local ids = {}
for j = 3, #ARGV, 4 do ids[#ids + 1] = ARGV[j] end
for _, b in ipairs(KEYS) do
  local dd = redis.call('HGET', key(b, 'opts'), 'delay_ms')
  if not dd then
    res[#res + 1] = -1
    res[#res + 1] = 0
  else
    dd = tonumber(dd)
    local have = hmget(key(b, 'msg'), ids)
    local seen, fresh, dups = {}, {}, {}
    for i, id in ipairs(ids) do
      if have[i] or seen[id] then
        dups[#dups + 1] = id
      else
        seen[id] = true
        fresh[#fresh + 1] = 3 + (i - 1) * 4
      end
    end
    if #fresh > 0 then
      local seq0 = redis.call('INCRBY', key(b, 'seqctr'), #fresh) - #fresh
      local kv, byp = {}, {}
      for n, j in ipairs(fresh) do
        local id, env, p, d = ARGV[j], ARGV[j + 1], ARGV[j + 2], tonumber(ARGV[j + 3])
        if d < 0 then d = dd end
        kv[#kv + 1] = id
        kv[#kv + 1] = ev('sent', 0, detail, now) .. env
        local z = byp[p]
        if not z then z = {}; byp[p] = z end
        z[#z + 1] = num(now + d)
        z[#z + 1] = member(seq0 + n, id)
      end
      bulk('HSET', key(b, 'msg'), kv)
      for p, z in pairs(byp) do
        bulk('ZADD', key(b, 'w:' .. p), z)
        redis.call('ZADD', key(b, 'prios'), p, p)
      end
    end
    res[#res + 1] = #fresh
    res[#res + 1] = #dups
    for _, id in ipairs(dups) do res[#res + 1] = id end
  end
end
return res
