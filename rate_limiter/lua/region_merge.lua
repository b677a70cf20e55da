-- Merge one region's count into another region's copy of a counter (G-counter: max wins).
-- KEYS[1]: the counter hash of region_counter.lua
-- ARGV[1]: the sending region's name
-- ARGV[2]: the window index the count belongs to
-- ARGV[3]: the sending region's units in that window
-- ARGV[4]: TTL in milliseconds
-- returns 1 when merged, 0 when the count was for a window this copy has left behind
-- Max-merge makes a sync idempotent and order-free: resending or reordering is harmless.
local stored = tonumber(redis.call('HGET', KEYS[1], 'w'))
local window = tonumber(ARGV[2])
if stored ~= nil and stored > window then
    return 0
end
if stored == nil or stored < window then
    redis.call('DEL', KEYS[1])
    redis.call('HSET', KEYS[1], 'w', ARGV[2])
end
local current = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if tonumber(ARGV[3]) > current then
    redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
