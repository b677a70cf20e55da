-- Store a finished request's response under its key, if the caller still owns the lock.
-- KEYS[1]: the key's record (see acquire.lua)
-- ARGV[1]: the caller's owner token
-- ARGV[2]: the response to replay (JSON)
-- ARGV[3]: how long to keep it, in milliseconds (the key's expiry)
-- returns: 1 when stored; 0 when the lock was lost (its TTL ran out, or Redis lost the
--          record, and perhaps another request holds it now): nothing is written
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then
    return 0
end
redis.call('HSET', KEYS[1], 'state', 'finished', 'response', ARGV[2])
redis.call('HDEL', KEYS[1], 'token')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
