using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibSystemd
{
    /// <summary>Waits for I/O on the bus for at most timeoutUsec (ulong.MaxValue = forever).</summary>
    [LibraryImport(Library, EntryPoint = "sd_bus_wait")]
    public static partial int sd_bus_wait(nint bus, ulong timeoutUsec);
}
