using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibRados
{
    /// <summary>exclusive: LIBRADOS_CREATE_EXCLUSIVE makes the operation fail with -EEXIST if the object exists.</summary>
    [LibraryImport(Library, EntryPoint = "rados_write_op_create", StringMarshalling = StringMarshalling.Utf8)]
    public static partial void rados_write_op_create(nint writeOp, int exclusive, string? category);
}
