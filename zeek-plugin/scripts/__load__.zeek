# Loaded when the Shardcap::PcapDir plugin is activated (Zeek activates the plugins it finds in
# ZEEK_PLUGIN_PATH). Declares the options of the `pcapdir::` packet source.

module PcapDir;

export {
	## What happens to a spool segment once all its packets were handed over: F removes it
	## (shardcap's --spool-backlog counts the segments left in the shard directory), T renames
	## it to NAME.done instead (then something else must clean up; the backlog does not count
	## .done files). Set on the command line with PcapDir::keep_consumed=T.
	const keep_consumed = F &redef;
}
