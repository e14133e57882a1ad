using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibSystemd
{
    /// <summary>Handles at most one pending item: &gt;0 did work (call again), 0 nothing to do, &lt;0 errno.</summary>
    [LibraryImport(Library, EntryPoint = "sd_bus_process")]
    public static partial int sd_bus_process(nint bus, nint* message);
}
