using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibRados
{
    [LibraryImport(Library, EntryPoint = "rados_unwatch2")]
    public static partial int rados_unwatch2(nint ioctx, ulong cookie);
}
