using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibRados
{
    /// <summary>Waits until no watch callback is running or queued (call after unwatching, before freeing their argument).</summary>
    [LibraryImport(Library, EntryPoint = "rados_watch_flush")]
    public static partial int rados_watch_flush(nint cluster);
}
