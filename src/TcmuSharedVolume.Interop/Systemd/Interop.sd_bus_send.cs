using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibSystemd
{
    /// <summary>bus may be 0: the message's own bus is used.</summary>
    [LibraryImport(Library, EntryPoint = "sd_bus_send")]
    public static partial int sd_bus_send(nint bus, nint message, ulong* cookie);
}
