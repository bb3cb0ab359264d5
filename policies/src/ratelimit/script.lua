-- One reconciliation batch, atomically. Per key i (KEYS[2i-1] = the key's global TAT in
-- microseconds of Redis time, KEYS[2i] = a hash of gateway -> "seen_us:demand"):
-- ARGV[1] = this gateway's id, ARGV[2] = how long a gateway's demand counts (us),
-- then 4 values per key: emission interval (ns), tolerance (ns), requests admitted since the
-- last batch, requests seen since the last batch.
-- The admitted requests advance the global TAT (they already happened: a debt is kept, not
-- refused). Returns per key {TAT - now in us, this gateway's share of the demand in ppm}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local gw = ARGV[1]
local window = tonumber(ARGV[2])
local out = {}
for i = 1, #KEYS / 2 do
  local tk, dk = KEYS[2 * i - 1], KEYS[2 * i]
  local a = 2 + (i - 1) * 4
  local interval = tonumber(ARGV[a + 1]) / 1000
  local tau = tonumber(ARGV[a + 2]) / 1000
  local used = tonumber(ARGV[a + 3])
  local demand = tonumber(ARGV[a + 4])
  local tat = tonumber(redis.call('GET', tk) or '0') or 0
  if tat < now then tat = now end
  tat = tat + used * interval
  redis.call('SET', tk, string.format('%.3f', tat), 'PX', math.ceil((tat - now + tau) / 1000) + 1000)
  if demand > 0 then
    redis.call('HSET', dk, gw, string.format('%.0f:%d', now, demand))
  end
  local mine, total = 0, 0
  local all = redis.call('HGETALL', dk)
  for j = 1, #all, 2 do
    local seen, d = string.match(all[j + 1], '^(%d+):(%d+)$')
    seen, d = tonumber(seen), tonumber(d)
    if seen == nil or d == nil or now - seen > window then
      redis.call('HDEL', dk, all[j])
    else
      total = total + d
      if all[j] == gw then mine = d end
    end
  end
  redis.call('PEXPIRE', dk, math.ceil(window / 1000) + 1000)
  local share = 1000000
  if total > 0 then share = math.floor(mine * 1000000 / total) end
  out[i] = { math.floor(tat - now), share }
end
return out
