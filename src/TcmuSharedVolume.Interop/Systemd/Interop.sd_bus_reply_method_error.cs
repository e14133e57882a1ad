using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibSystemd
{
    /// <summary>The non-variadic way to answer a call with a D-Bus error (sd_bus_reply_method_errorf is variadic).</summary>
    [LibraryImport(Library, EntryPoint = "sd_bus_reply_method_error")]
    public static partial int sd_bus_reply_method_error(nint call, SdBusError* error);
}
