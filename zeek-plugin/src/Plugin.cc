// The Shardcap::PcapDir plugin: registers the `pcapdir` packet source for trace reading, so that
// `zeek -r pcapdir::/spool/shard-0` reads a shardcap spool shard with network time driven by the
// packets' timestamps.

#include "Plugin.h"

#include <zeek/iosource/Component.h>

#include "PcapDirSource.h"
#include "config.h"

namespace zeek::plugin::Shardcap_PcapDir {

Plugin plugin;

zeek::plugin::Configuration Plugin::Configure() {
    AddComponent(new zeek::iosource::PktSrcComponent("PcapDirReader", "pcapdir",
                                                     zeek::iosource::PktSrcComponent::TRACE,
                                                     shardcap::zeek_glue::PcapDirSource::Instantiate));

    zeek::plugin::Configuration config;
    config.name = "Shardcap::PcapDir";
    config.description = "Reads a shardcap pcapdir spool shard as one trace (-r pcapdir::/spool/shard-0)";
    config.version.major = PCAPDIR_VERSION_MAJOR;
    config.version.minor = PCAPDIR_VERSION_MINOR;
    config.version.patch = PCAPDIR_VERSION_PATCH;
    return config;
}

} // namespace zeek::plugin::Shardcap_PcapDir
