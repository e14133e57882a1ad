using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibSystemd
{
    /// <summary>Connects to the system bus (honours DBUS_SYSTEM_BUS_ADDRESS). Returns negative errno.</summary>
    [LibraryImport(Library, EntryPoint = "sd_bus_open_system")]
    public static partial int sd_bus_open_system(nint* bus);
}
