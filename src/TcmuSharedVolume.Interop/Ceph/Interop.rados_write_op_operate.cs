using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibRados
{
    /// <summary>Runs the compound operation atomically on the object; mtime null: now.</summary>
    [LibraryImport(Library, EntryPoint = "rados_write_op_operate", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rados_write_op_operate(nint writeOp, nint ioctx, string oid, long* mtime, int flags);
}
