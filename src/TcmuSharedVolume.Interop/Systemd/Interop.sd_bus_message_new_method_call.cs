using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibSystemd
{
    [LibraryImport(Library, EntryPoint = "sd_bus_message_new_method_call", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int sd_bus_message_new_method_call(nint bus, nint* message, string destination, string path, string @interface, string member);
}
