-- Give a key back after a failure, so that a retry may try again at once.
-- KEYS[1]: the key's record (see acquire.lua)
-- ARGV[1]: the caller's owner token
-- returns: 1 when released; 0 when the caller no longer owned it (then it is left alone:
--          deleting another request's lock is the bug this check exists to prevent)
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then
    return 0
end
redis.call('DEL', KEYS[1])
return 1
