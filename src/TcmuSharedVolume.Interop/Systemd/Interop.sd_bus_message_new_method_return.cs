using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibSystemd
{
    [LibraryImport(Library, EntryPoint = "sd_bus_message_new_method_return")]
    public static partial int sd_bus_message_new_method_return(nint call, nint* reply);
}
