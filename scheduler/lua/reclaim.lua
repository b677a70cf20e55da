-- Take back expired leases (their worker died or stalled): each job goes back to the
-- ready set at once, or is dead if its expired delivery was its last attempt. A lost
-- worker is not a downstream failure: the lane's breaker is not told.
-- KEYS[1]: leases ZSET; KEYS[2]: ready ZSET; KEYS[3]: sequence counter
-- KEYS[4]: journal stream; KEYS[5]: in-flight hash (lane -> running)
-- ARGV[1]: now in ms, or "" to read Redis TIME
-- ARGV[2]: at most this many leases per call; ARGV[3]: job hash key prefix
-- ARGV[4]: "1" to journal, "" not to
-- returns {requeued count, dead job 1 as a flat hash list, dead job 2, ...}; a lease
--          expires when its deadline is before now.

local function int(x) return string.format('%d', x) end

local now = tonumber(ARGV[1])
if not now then
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local prefix, journal = ARGV[3], ARGV[4] == '1'
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. int(now),
    'LIMIT', 0, ARGV[2])
local out = {0}
for _, id in ipairs(expired) do
    redis.call('ZREM', KEYS[1], id)
    local key = prefix .. id
    local f = redis.call('HMGET', key, 'attempts', 'max_attempts', 'priority', 'dedupe',
        'type', 'lane', 'owner', 'payload')
    if f[1] then
        local lane = f[6] or f[5]
        local err = 'lease expired (worker ' .. (f[7] or '?') .. ')'
        if redis.call('HINCRBY', KEYS[5], lane, -1) <= 0 then redis.call('HDEL', KEYS[5], lane) end
        redis.call('HDEL', key, 'owner')
        redis.call('HSET', key, 'error', err)
        if journal then
            redis.call('XADD', KEYS[4], '*', 'e', 'failed', 'id', id, 't', f[5], 'a', f[1],
                'err', err)
        end
        if tonumber(f[1]) >= tonumber(f[2]) then
            redis.call('HSET', key, 'state', 'dead')
            out[#out + 1] = redis.call('HGETALL', key)
            redis.call('DEL', key)
            if f[4] and f[4] ~= '' then redis.call('DEL', f[4]) end
            if journal then
                redis.call('XADD', KEYS[4], '*', 'e', 'dead', 'id', id, 't', f[5], 'a', f[1],
                    'err', err, 'p', f[8], 'pr', f[3], 'm', f[2])
            end
        else
            local seq = redis.call('INCR', KEYS[3])
            redis.call('ZADD', KEYS[2], int((9 - tonumber(f[3])) * 562949953421312 + seq), id)
            redis.call('HSET', key, 'state', 'queued', 'run_at', int(now))
            out[1] = out[1] + 1
            if journal then
                redis.call('XADD', KEYS[4], '*', 'e', 'retried', 'id', id, 't', f[5],
                    'a', f[1], 'run', int(now))
            end
        end
    end
end
return out
