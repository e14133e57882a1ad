using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibRados
{
    /// <summary>The client's global id: the notifier and watcher id in watch/notify.</summary>
    [LibraryImport(Library, EntryPoint = "rados_get_instance_id")]
    public static partial ulong rados_get_instance_id(nint cluster);
}
