using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibRados
{
    [LibraryImport(Library, EntryPoint = "rados_release_write_op")]
    public static partial void rados_release_write_op(nint writeOp);
}
