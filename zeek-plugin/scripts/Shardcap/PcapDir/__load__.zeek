# Loaded by `@load Shardcap/PcapDir` (and by zkg's `@load packages`). The packet source needs no
# script: its option PcapDir::keep_consumed is declared by the plugin's own __load__.zeek, loaded
# whenever the plugin is active. Use it as:
#
#   zeek -r pcapdir::/spool/shard-0 [PcapDir::keep_consumed=T] ...
