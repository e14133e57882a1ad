using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibSystemd
{
    /// <summary>Allocates an unconnected bus object, for a private address (sd_bus_set_address + sd_bus_start).</summary>
    [LibraryImport(Library, EntryPoint = "sd_bus_new")]
    public static partial int sd_bus_new(nint* bus);
}
