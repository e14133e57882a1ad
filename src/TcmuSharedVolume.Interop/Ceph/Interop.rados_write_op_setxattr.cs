using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibRados
{
    [LibraryImport(Library, EntryPoint = "rados_write_op_setxattr", StringMarshalling = StringMarshalling.Utf8)]
    public static partial void rados_write_op_setxattr(nint writeOp, string name, byte* value, nuint valueLength);
}
