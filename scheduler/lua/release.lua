-- Hand a lease back without using up an attempt (a worker stopping gracefully).
-- KEYS[1]: leases ZSET; KEYS[2]: ready ZSET; KEYS[3]: sequence counter; KEYS[4]: job hash
-- KEYS[5]: journal stream; KEYS[6]: in-flight hash (lane -> running)
-- ARGV[1]: worker id; ARGV[2]: fencing token (attempts); ARGV[3]: "1" to journal
-- returns 1 if the job is back in the ready set with attempts - 1, 0 if the lease
--          was already lost.

local function int(x) return string.format('%d', x) end

local f = redis.call('HMGET', KEYS[4], 'owner', 'attempts', 'state', 'id', 'priority',
    'type', 'lane')
if f[1] ~= ARGV[1] or f[2] ~= ARGV[2] or f[3] ~= 'running' then return 0 end
if redis.call('ZREM', KEYS[1], f[4]) == 0 then return 0 end
local lane = f[7] or f[6]
local seq = redis.call('INCR', KEYS[3])
redis.call('ZADD', KEYS[2], int((9 - tonumber(f[5])) * 562949953421312 + seq), f[4])
local attempts = redis.call('HINCRBY', KEYS[4], 'attempts', -1)
redis.call('HDEL', KEYS[4], 'owner')
redis.call('HSET', KEYS[4], 'state', 'queued')
if redis.call('HINCRBY', KEYS[6], lane, -1) <= 0 then redis.call('HDEL', KEYS[6], lane) end
if ARGV[3] == '1' then
    redis.call('XADD', KEYS[5], '*', 'e', 'released', 'id', f[4], 't', f[6], 'a', attempts)
end
return 1
