-- Messages from a remote domain held while its keys are fetched (receiving.lib.lua), within
-- bounds (README "Limits"): per domain at most trust_path_held_messages messages and
-- trust_path_held_bytes bytes, over all domains trust_path_held_total_bytes, and a batch for at
-- most trust_path_held_seconds.  A domain whose key fetch hangs could otherwise make this server
-- keep everything it sends for as long as the fetch takes.
--
-- A message beyond a bound is refused with <resource-constraint/> (type 'wait': the sender may
-- send it again later), so nothing is lost silently; a batch held too long is decided as if the
-- fetch had failed.  An error beyond a bound (an attested refusal on its way back) is not
-- answered with an error (RFC 6120 8.3.1): it is decided at once, as if the fetch had failed.
local st = require "util.stanza";

return function (tp)
	local host, limits = tp.host, tp.options.limits;

	local batches = {};   -- domain -> { events = { event, ... }, bytes = n, refused = n }
	local total_bytes = 0;

	-- Remove `batch` if it is still `domain`'s current one; its events, or nil if it was taken.
	local function take(domain, batch)
		if batches[domain] ~= batch then return nil; end
		batches[domain] = nil;
		total_bytes = total_bytes - batch.bytes;
		if batch.refused > 0 then
			module:log("info", "%s: refused %d message(s) beyond the held limits while its keys were fetched", domain, batch.refused);
		end
		return batch.events;
	end

	-- Which bound `size` more bytes would break for `batch`, or nil.
	local function exceeded(batch, size)
		if #batch.events >= limits.held_messages then return ("%d messages"):format(limits.held_messages); end
		if batch.bytes + size > limits.held_bytes then return ("%d bytes"):format(limits.held_bytes); end
		if total_bytes + size > limits.held_total_bytes then return ("%d bytes from all domains"):format(limits.held_total_bytes); end
		return nil;
	end

	local function refuse(event, domain, bound, decide, unavailable)
		local stanza = event.stanza;
		if stanza.attr.type == "error" then
			decide({ event }, unavailable());
			return;
		end
		local reply = st.error_reply(stanza, "wait", "resource-constraint",
			("%s is holding too much from %s (at most %s) while it fetches its keys; send it again later"):format(host, domain, bound), host);
		module:send(reply);
	end

	-- Is a batch of `domain` waiting?
	local function is_holding(domain) return batches[domain] ~= nil; end

	-- Hold `event` from `domain`, or refuse it when that would break a bound.  A new batch calls
	-- `fetch()` (a promise of the domain's peer info); `decide(events, info)` is called once per
	-- batch, with the fetched info, or with `unavailable()` after held_seconds.
	local function hold(domain, event, fetch, decide, unavailable)
		local size = #tostring(event.stanza);
		local batch = batches[domain];
		if batch then
			local bound = exceeded(batch, size);
			if bound then
				batch.refused = batch.refused + 1;
				refuse(event, domain, bound, decide, unavailable);
				return;
			end
			batch.events[#batch.events + 1] = event;
			batch.bytes = batch.bytes + size;
			total_bytes = total_bytes + size;
			return;
		end
		batch = { events = {}, bytes = 0, refused = 0 };
		local bound = exceeded(batch, size);
		if bound then refuse(event, domain, bound, decide, unavailable); return; end
		batch.events[1], batch.bytes = event, size;
		batches[domain] = batch;
		total_bytes = total_bytes + size;
		fetch():next(function (info)
			local events = take(domain, batch);
			if events then decide(events, info); end
		end);
		module:add_timer(limits.held_seconds, function ()
			local events = take(domain, batch);
			if events then
				module:log("info", "%s: its keys did not arrive within %d s; deciding %d held message(s) without them",
					domain, limits.held_seconds, #events);
				decide(events, unavailable());
			end
		end);
	end

	return { hold = hold, is_holding = is_holding };
end
