-- Acknowledge a job: if this worker still holds this delivery, delete the job, free its
-- lane's slot and count a success for the lane's circuit breaker.
-- KEYS[1]: leases ZSET; KEYS[2]: the job's hash; KEYS[3]: journal stream
-- KEYS[4]: in-flight hash (lane -> running); KEYS[5]: policies hash (type -> JSON)
-- KEYS[6]: the set of lanes that have a breaker (so reading them needs no SCAN)
-- ARGV[1]: worker id; ARGV[2]: fencing token (the attempts its claim returned)
-- ARGV[3]: "1" to journal, "" not to; ARGV[4]: lane key prefix (.. 'breaker:' .. lane)
-- ARGV[5]: now in ms, or "" to read Redis TIME
-- returns 1 if acknowledged (hash, lease and dedupe key deleted), 0 if refused
--          (the lease was lost: the job went back to the queue or to someone else).
-- Breaker: closed counts calls in a window of window_ms; half-open closes after
-- `probes` successes.

local function int(x) return string.format('%d', x) end

local f = redis.call('HMGET', KEYS[2], 'owner', 'attempts', 'state', 'id', 'dedupe', 'type',
    'lane')
if f[1] ~= ARGV[1] or f[2] ~= ARGV[2] or f[3] ~= 'running' then return 0 end
if not redis.call('ZSCORE', KEYS[1], f[4]) then return 0 end
local lane = f[7] or f[6]
redis.call('ZREM', KEYS[1], f[4])
redis.call('DEL', KEYS[2])
if f[5] and f[5] ~= '' then redis.call('DEL', f[5]) end
if redis.call('HINCRBY', KEYS[4], lane, -1) <= 0 then redis.call('HDEL', KEYS[4], lane) end
if ARGV[3] == '1' then
    redis.call('XADD', KEYS[3], '*', 'e', 'succeeded', 'id', f[4], 't', f[6], 'a', f[2])
end

local raw = redis.call('HGET', KEYS[5], f[6])
local breaker = raw and cjson.decode(raw).breaker
if not breaker then return 1 end
local now = tonumber(ARGV[5])
if not now then
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local key = ARGV[4] .. 'breaker:' .. lane
redis.call('SADD', KEYS[6], lane)
local b = redis.call('HMGET', key, 'state', 'since')
if b[1] == 'half_open' then
    redis.call('HINCRBY', key, 'probes', -1)
    if redis.call('HINCRBY', key, 'successes', 1) >= breaker.probes then
        redis.call('DEL', key)
        redis.call('HSET', key, 'state', 'closed', 'since', int(now), 'calls', 0, 'failures', 0)
    end
elseif b[1] ~= 'open' then
    if not b[2] or now - tonumber(b[2]) >= breaker.window_ms then
        redis.call('HSET', key, 'state', 'closed', 'since', int(now), 'calls', 0, 'failures', 0)
    end
    redis.call('HINCRBY', key, 'calls', 1)
end
return 1
