-- Acknowledge a job: if this worker still holds this delivery, delete the job.
-- KEYS[1]: leases ZSET; KEYS[2]: the job's hash
-- ARGV[1]: worker id; ARGV[2]: fencing token (the attempts its claim returned)
-- returns 1 if acknowledged (hash, lease and dedupe key deleted), 0 if refused
--          (the lease was lost: the job went back to the queue or to someone else).

local f = redis.call('HMGET', KEYS[2], 'owner', 'attempts', 'state', 'id', 'dedupe')
if f[1] ~= ARGV[1] or f[2] ~= ARGV[2] or f[3] ~= 'running' then return 0 end
if not redis.call('ZSCORE', KEYS[1], f[4]) then return 0 end
redis.call('ZREM', KEYS[1], f[4])
redis.call('DEL', KEYS[2])
if f[5] and f[5] ~= '' then redis.call('DEL', f[5]) end
return 1
