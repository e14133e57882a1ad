using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibSystemd
{
    /// <summary>poll() events (POLLIN/POLLOUT) to wait for on sd_bus_get_fd.</summary>
    [LibraryImport(Library, EntryPoint = "sd_bus_get_events")]
    public static partial int sd_bus_get_events(nint bus);
}
