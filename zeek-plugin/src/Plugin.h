// The Shardcap::PcapDir plugin: registers the `pcapdir` packet source.

#pragma once

#include <zeek/plugin/Plugin.h>

namespace zeek::plugin::Shardcap_PcapDir {

class Plugin : public zeek::plugin::Plugin {
protected:
    zeek::plugin::Configuration Configure() override;
};

extern Plugin plugin;

} // namespace zeek::plugin::Shardcap_PcapDir
