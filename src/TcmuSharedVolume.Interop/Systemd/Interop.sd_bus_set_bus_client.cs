using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibSystemd
{
    /// <summary>b != 0: say Hello to a bus daemon after connecting (needed for names and routing).</summary>
    [LibraryImport(Library, EntryPoint = "sd_bus_set_bus_client")]
    public static partial int sd_bus_set_bus_client(nint bus, int b);
}
