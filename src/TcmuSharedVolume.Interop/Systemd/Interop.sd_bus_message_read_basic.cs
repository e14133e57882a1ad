using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibSystemd
{
    /// <summary>Strings: value receives a const char* owned by the message.</summary>
    [LibraryImport(Library, EntryPoint = "sd_bus_message_read_basic")]
    public static partial int sd_bus_message_read_basic(nint message, byte type, void* value);
}
