using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibSystemd
{
    [LibraryImport(Library, EntryPoint = "sd_bus_start")]
    public static partial int sd_bus_start(nint bus);
}
