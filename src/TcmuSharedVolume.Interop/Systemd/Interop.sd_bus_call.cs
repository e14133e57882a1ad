using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibSystemd
{
    /// <summary>Synchronous method call; a D-Bus error reply fills error and returns negative errno.</summary>
    [LibraryImport(Library, EntryPoint = "sd_bus_call")]
    public static partial int sd_bus_call(nint bus, nint message, ulong timeoutUsec, SdBusError* error, nint* reply);
}
