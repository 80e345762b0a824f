-- Test-only Prosody module for Parley's federation interop test: resolves
-- the domains listed in parley_test_routes to fixed addresses instead of
-- DNS, like Parley's s2s.routes. Never use it outside tests.
local service = require "net.resolvers.service";
local basic = require "net.resolvers.basic";
local manual = require "net.resolvers.manual";

local routes = module:get_option("parley_test_routes", {});
local original_new = service.new;

service.new = function(hostname, srvname, proto, extra)
	local route = routes[hostname];
	if route then
		if srvname == "xmpp-server" then
			return basic.new(route[1], route[2], "tcp", extra);
		end
		return manual.new({}, "tcp", extra);
	end
	return original_new(hostname, srvname, proto, extra);
end

function module.unload()
	service.new = original_new;
end
