using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibRados
{
    [LibraryImport(Library, EntryPoint = "rados_wait_for_latest_osdmap")]
    public static partial int rados_wait_for_latest_osdmap(nint cluster);
}
