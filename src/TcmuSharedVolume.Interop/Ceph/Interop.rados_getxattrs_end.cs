using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibRados
{
    [LibraryImport(Library, EntryPoint = "rados_getxattrs_end")]
    public static partial void rados_getxattrs_end(nint iterator);
}
