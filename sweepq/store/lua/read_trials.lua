-- Fields of many trials in one call, as JSON [[params, id, [values...]], ...] (params spliced in
-- as stored, not decoded and re-encoded: what makes the dashboard's reads of 10,000 trials fast).
-- ARGV: ns, mode ('ids' | 'range'), sid, start, nfields, fields..., then ids ('ids') or stop ('range')
local ns, mode, nf = ARGV[1], ARGV[2], tonumber(ARGV[5])
local fields = {}
for i = 1, nf do fields[i] = ARGV[5 + i] end
local pidx = 0
for i = 1, nf do if fields[i] == 'params' then pidx = i end end
local tids
if mode == 'range' then
  tids = redis.call('ZRANGE', ns .. ':sweep:' .. ARGV[3] .. ':trials', ARGV[4], ARGV[5 + nf + 1])
else
  tids = {}
  for i = 6 + nf, #ARGV do tids[#tids + 1] = ARGV[i] end
end
local out = {}
for _, tid in ipairs(tids) do
  local vals = redis.call('HMGET', ns .. ':trial:' .. tid, unpack(fields))
  local params = 'null'
  if pidx > 0 and vals[pidx] and vals[pidx] ~= '' then params = vals[pidx] end
  if pidx > 0 then vals[pidx] = false end
  out[#out + 1] = '[' .. params .. ',' .. cjson.encode(tid) .. ',' .. cjson.encode(vals) .. ']'
end
return '[' .. table.concat(out, ',') .. ']'
