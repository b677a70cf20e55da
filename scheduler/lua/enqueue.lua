-- Enqueue one job: its hash, then the ready set (due now) or the scheduled set.
-- KEYS[1]: scheduled ZSET (job id -> run time, ms)
-- KEYS[2]: ready ZSET (job id -> (MAX_PRIORITY - priority) * 2^49 + sequence)
-- KEYS[3]: sequence counter (INCR), FIFO order within a priority
-- KEYS[4]: the job's hash
-- KEYS[5]: journal stream (every transition, drained into the PostgreSQL audit log)
-- KEYS[6]: wake-up list: a job due now pushes a token that wakes one idle worker
--          (kept to WAKE_TOKENS, so it never grows while no worker listens)
-- KEYS[7]: optional dedupe key (a string holding the first job's id)
-- KEYS[#KEYS]: with ARGV[11], a fence (a string holding the last tick enqueued through it)
-- ARGV[1]: now in ms, or "" to read Redis TIME (production: the only clock)
-- ARGV[2]: job id; ARGV[3]: type; ARGV[4]: payload (JSON); ARGV[5]: priority (0..9)
-- ARGV[6]: max attempts; ARGV[7]: run time in ms, or "" for now
-- ARGV[8]: lane (what breakers and limits key on: the type, or type@host)
-- ARGV[9]: "1" to journal, "" not to; ARGV[10]: the journal event ("enqueued" or
--          "requeued", for a dead job sent back from the DLQ)
-- ARGV[11]: optional fence tick: enqueue only if the fence holds less, then hold this tick
-- returns {id, 1} for a new job; {first id, 0} when the dedupe key already exists;
--          {id, 0} when a job with this id is already live (enqueueing the same id twice
--          is safe) or the fence already holds this tick or a later one.

local function int(x) return string.format('%d', x) end
local WAKE_TOKENS = 64

local now = tonumber(ARGV[1])
if not now then
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local id = ARGV[2]
local keys_but_fence = #KEYS
local tick = tonumber(ARGV[11])
if tick then
    local fenced = tonumber(redis.call('GET', KEYS[#KEYS]))
    if fenced and fenced >= tick then return {id, 0} end
    redis.call('SET', KEYS[#KEYS], int(tick))
    keys_but_fence = #KEYS - 1
end
if redis.call('EXISTS', KEYS[4]) == 1 then return {id, 0} end
local dedupe = ''
if keys_but_fence >= 7 then
    dedupe = KEYS[7]
    local first = redis.call('GET', dedupe)
    if first then return {first, 0} end
    redis.call('SET', dedupe, id)
end
local priority = tonumber(ARGV[5])
local run_at = tonumber(ARGV[7]) or now
local state = 'queued'
if run_at > now then
    state = 'scheduled'
    redis.call('ZADD', KEYS[1], int(run_at), id)
else
    local seq = redis.call('INCR', KEYS[3])
    redis.call('ZADD', KEYS[2], int((9 - priority) * 562949953421312 + seq), id)
    redis.call('LPUSH', KEYS[6], '1')
    redis.call('LTRIM', KEYS[6], 0, WAKE_TOKENS - 1)
end
redis.call('HSET', KEYS[4], 'id', id, 'type', ARGV[3], 'payload', ARGV[4],
    'priority', int(priority), 'attempts', 0, 'max_attempts', ARGV[6],
    'run_at', int(run_at), 'enqueued_at', int(now), 'state', state, 'dedupe', dedupe,
    'lane', ARGV[8])
if ARGV[9] == '1' then
    redis.call('XADD', KEYS[5], '*', 'e', ARGV[10], 'id', id, 't', ARGV[3], 'a', 0,
        'p', ARGV[4], 'pr', int(priority), 'm', ARGV[6], 's', state)
end
return {id, 1}
