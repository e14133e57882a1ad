using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibSystemd
{
    [LibraryImport(Library, EntryPoint = "sd_bus_error_free")]
    public static partial void sd_bus_error_free(SdBusError* error);
}
