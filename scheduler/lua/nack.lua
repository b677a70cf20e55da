-- Fail a delivery: back to the queue after a delay, or dead when out of attempts.
-- KEYS[1]: leases ZSET; KEYS[2]: scheduled ZSET; KEYS[3]: ready ZSET
-- KEYS[4]: sequence counter; KEYS[5]: the job's hash
-- ARGV[1]: now in ms, or "" to read Redis TIME
-- ARGV[2]: worker id; ARGV[3]: fencing token; ARGV[4]: retry delay in ms
-- ARGV[5]: the error, kept with the job
-- returns {"refused"} if the worker no longer holds this delivery;
--          {"retrying", retry_at_ms}; or {"dead", the job's hash as a flat list}
--          (the hash, lease and dedupe key are deleted: the caller owns the dead job).

local function int(x) return string.format('%d', x) end

local now = tonumber(ARGV[1])
if not now then
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local key = KEYS[5]
local f = redis.call('HMGET', key, 'owner', 'attempts', 'state', 'id', 'dedupe',
    'max_attempts', 'priority')
if f[1] ~= ARGV[2] or f[2] ~= ARGV[3] or f[3] ~= 'running' then return {'refused'} end
local id = f[4]
if not redis.call('ZSCORE', KEYS[1], id) then return {'refused'} end
redis.call('ZREM', KEYS[1], id)
redis.call('HDEL', key, 'owner')
redis.call('HSET', key, 'error', ARGV[5])
if tonumber(f[2]) >= tonumber(f[6]) then
    redis.call('HSET', key, 'state', 'dead')
    local all = redis.call('HGETALL', key)
    redis.call('DEL', key)
    if f[5] and f[5] ~= '' then redis.call('DEL', f[5]) end
    return {'dead', all}
end
local retry_at = now + tonumber(ARGV[4])
redis.call('HSET', key, 'state', 'retrying', 'run_at', int(retry_at))
if retry_at > now then
    redis.call('ZADD', KEYS[2], int(retry_at), id)
else
    local seq = redis.call('INCR', KEYS[4])
    redis.call('ZADD', KEYS[3], int((9 - tonumber(f[7])) * 562949953421312 + seq), id)
end
return {'retrying', int(retry_at)}
