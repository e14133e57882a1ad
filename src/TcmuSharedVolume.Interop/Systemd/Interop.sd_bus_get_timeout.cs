using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibSystemd
{
    /// <summary>Absolute CLOCK_MONOTONIC deadline in µs, or ulong.MaxValue when none.</summary>
    [LibraryImport(Library, EntryPoint = "sd_bus_get_timeout")]
    public static partial int sd_bus_get_timeout(nint bus, ulong* timeoutUsec);
}
