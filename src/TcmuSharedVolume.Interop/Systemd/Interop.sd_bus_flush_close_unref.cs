using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibSystemd
{
    [LibraryImport(Library, EntryPoint = "sd_bus_flush_close_unref")]
    public static partial nint sd_bus_flush_close_unref(nint bus);
}
