using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibSystemd
{
    /// <summary>Synchronous RequestName; flags SD_BUS_NAME_*.</summary>
    [LibraryImport(Library, EntryPoint = "sd_bus_request_name", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int sd_bus_request_name(nint bus, string name, ulong flags);
}
