-- Enqueue a batch into one or more queues (KEYS = queue bases), all or nothing:
-- every check happens before the first write.
-- ARGV: has_route ('0'|'1'), route, then per message: id, envelope, priority, delay_ms (-1 = queue default).
-- Returns {1, per queue: enqueued (-1 = queue missing, skipped), ndups, dup ids...}.
local has_route = ARGV[1] == '1'
local detail = nil
if has_route then detail = 'route key ' .. ARGV[2] end
local now = now_ms()
local res = {1}
for _, b in ipairs(KEYS) do
  local dd = redis.call('HGET', key(b, 'opts'), 'delay_ms')
  if not dd then
    res[#res + 1] = -1
    res[#res + 1] = 0
  else
    dd = tonumber(dd)
    local n = 0
    local dups = {}
    for j = 3, #ARGV, 4 do
      local id, env, p, d = ARGV[j], ARGV[j + 1], ARGV[j + 2], tonumber(ARGV[j + 3])
      if redis.call('HEXISTS', key(b, 'msg'), id) == 1 then
        dups[#dups + 1] = id
      else
        if d < 0 then d = dd end
        local seq = redis.call('INCR', key(b, 'seqctr'))
        redis.call('HSET', key(b, 'msg'), id, env)
        redis.call('HSET', key(b, 'pri'), id, p)
        redis.call('HSET', key(b, 'seq'), id, seq)
        redis.call('HSET', key(b, 'att'), id, 0)
        redis.call('ZADD', key(b, 'w:' .. p), num(now + d), member(seq, id))
        redis.call('ZADD', key(b, 'prios'), p, p)
        hist(b, id, 'sent', 0, detail, now)
        n = n + 1
      end
    end
    res[#res + 1] = n
    res[#res + 1] = #dups
    for _, id in ipairs(dups) do res[#res + 1] = id end
  end
end
return res
