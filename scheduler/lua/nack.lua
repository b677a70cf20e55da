-- Fail a delivery: back to the queue after a delay, or dead when out of attempts (or
-- when the failure is permanent). Frees the lane's slot and counts a failure for the
-- lane's circuit breaker: closed opens when, within window_ms, at least min_calls
-- calls ended and failures / calls >= ratio; half-open opens again on any failure; an
-- open breaker holds the lane's jobs back (see claim) for cooldown_ms.
-- KEYS[1]: leases ZSET; KEYS[2]: scheduled ZSET; KEYS[3]: ready ZSET
-- KEYS[4]: sequence counter; KEYS[5]: the job's hash; KEYS[6]: journal stream
-- KEYS[7]: in-flight hash (lane -> running); KEYS[8]: policies hash (type -> JSON)
-- KEYS[9]: the set of lanes that have a breaker (so reading them needs no SCAN)
-- ARGV[1]: now in ms, or "" to read Redis TIME
-- ARGV[2]: worker id; ARGV[3]: fencing token; ARGV[4]: retry delay in ms
-- ARGV[5]: the error, kept with the job; ARGV[6]: "1" to journal, "" not to
-- ARGV[7]: lane key prefix (.. 'breaker:' .. lane)
-- ARGV[8]: "1" if the failure is permanent (dead now, whatever attempts are left)
-- ARGV[9]: "1" if the failure counts for the breaker (a downstream failure)
-- returns {"refused"} if the worker no longer holds this delivery;
--          {"retrying", retry_at_ms}; or {"dead", the job's hash as a flat list}
--          (the hash, lease and dedupe key are deleted; the journal keeps the job).

local function int(x) return string.format('%d', x) end

local now = tonumber(ARGV[1])
if not now then
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local key = KEYS[5]
local f = redis.call('HMGET', key, 'owner', 'attempts', 'state', 'id', 'dedupe',
    'max_attempts', 'priority', 'type', 'lane', 'payload')
if f[1] ~= ARGV[2] or f[2] ~= ARGV[3] or f[3] ~= 'running' then return {'refused'} end
local id, job_type = f[4], f[8]
local lane = f[9] or job_type
if not redis.call('ZSCORE', KEYS[1], id) then return {'refused'} end
redis.call('ZREM', KEYS[1], id)
redis.call('HDEL', key, 'owner')
redis.call('HSET', key, 'error', ARGV[5])
if redis.call('HINCRBY', KEYS[7], lane, -1) <= 0 then redis.call('HDEL', KEYS[7], lane) end
local journal = ARGV[6] == '1'
if journal then
    redis.call('XADD', KEYS[6], '*', 'e', 'failed', 'id', id, 't', job_type, 'a', f[2],
        'err', ARGV[5])
end

local raw = ARGV[9] == '1' and redis.call('HGET', KEYS[8], job_type)
local breaker = raw and cjson.decode(raw).breaker
if breaker then
    local bkey = ARGV[7] .. 'breaker:' .. lane
    redis.call('SADD', KEYS[9], lane)
    local b = redis.call('HMGET', bkey, 'state', 'since')
    if b[1] == 'half_open' then
        redis.call('DEL', bkey)
        redis.call('HSET', bkey, 'state', 'open', 'since', int(now),
            'until', int(now + breaker.cooldown_ms))
    elseif b[1] ~= 'open' then
        if not b[2] or now - tonumber(b[2]) >= breaker.window_ms then
            redis.call('HSET', bkey, 'state', 'closed', 'since', int(now), 'calls', 0,
                'failures', 0)
        end
        local calls = redis.call('HINCRBY', bkey, 'calls', 1)
        local failures = redis.call('HINCRBY', bkey, 'failures', 1)
        if calls >= breaker.min_calls and failures / calls >= breaker.ratio then
            redis.call('HSET', bkey, 'state', 'open', 'since', int(now),
                'until', int(now + breaker.cooldown_ms))
        end
    end
end

if ARGV[8] == '1' or tonumber(f[2]) >= tonumber(f[6]) then
    redis.call('HSET', key, 'state', 'dead')
    local all = redis.call('HGETALL', key)
    redis.call('DEL', key)
    if f[5] and f[5] ~= '' then redis.call('DEL', f[5]) end
    if journal then
        redis.call('XADD', KEYS[6], '*', 'e', 'dead', 'id', id, 't', job_type, 'a', f[2],
            'err', ARGV[5], 'p', f[10], 'pr', f[7], 'm', f[6])
    end
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
if journal then
    redis.call('XADD', KEYS[6], '*', 'e', 'retried', 'id', id, 't', job_type, 'a', f[2],
        'run', int(retry_at))
end
return {'retrying', int(retry_at)}
