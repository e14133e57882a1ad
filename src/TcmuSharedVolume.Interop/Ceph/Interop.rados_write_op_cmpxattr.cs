using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibRados
{
    /// <summary>Guard: the whole operation fails with -ECANCELED unless the xattr compares as asked (LIBRADOS_CMPXATTR_OP_*, as strings).</summary>
    [LibraryImport(Library, EntryPoint = "rados_write_op_cmpxattr", StringMarshalling = StringMarshalling.Utf8)]
    public static partial void rados_write_op_cmpxattr(nint writeOp, string name, byte comparisonOperator, byte* value, nuint valueLength);
}
