using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibSystemd
{
    /// <summary>Strings: value is the char* itself, not a pointer to it; other types: a pointer to the value.</summary>
    [LibraryImport(Library, EntryPoint = "sd_bus_message_append_basic")]
    public static partial int sd_bus_message_append_basic(nint message, byte type, void* value);
}
